"""The Streamlit dashboard (its issue builds the app). It reads run stores and reports only and
holds no simulation logic; import-linter forbids it from importing the sim driver or devices."""

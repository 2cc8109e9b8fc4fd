"""The Streamlit dashboard: ``twin dashboard [RUN_DIR]`` (``streamlit run dashboards/app.py``).

It reads run folders only (``store.sqlite`` read-only, ``report.json``) and holds no
simulation logic; import-linter forbids it from importing the sim driver or devices.

* :mod:`dashboards.run`: finding and checking run folders (no Streamlit; the CLI uses it);
* :mod:`dashboards.data`: cached, aggregated SQL over a store, as pandas frames;
* :mod:`dashboards.charts`: the colours, units and Plotly figures every page shares;
* :mod:`dashboards.ui`: the open run, page headers, "not in this run yet" notices;
* :mod:`dashboards.launch`: starting ``twin run`` in the background and following it;
* ``app.py`` and ``views/*.py``: the Streamlit entry script and its six pages.

See ``docs/adr/0007-dashboard.md``.
"""

"""Bundled scenario files (``*.yaml``, shipped as package data) and attack plug-ins.

Each YAML file here is a scenario that ``twin run NAME`` finds by name (see
``twin.scenario.loader``). Attack plug-ins register in :mod:`scenarios.attacks`; each states
the PSA Certified goal(s) it tests and the defence that stops it.
"""

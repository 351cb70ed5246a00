"""Screens pushed over the main view: help, the profile picker."""

"""Reports: plots (matplotlib, imported lazily), image grids and the HTML page of a reproduce run."""

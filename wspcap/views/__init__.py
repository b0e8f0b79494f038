"""Views of a capture's tables: the console summary, plots, the HTML report
and the live console view."""

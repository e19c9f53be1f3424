"""Side path: HTML reports, figures and `explain`."""

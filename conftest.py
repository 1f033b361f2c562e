"""pytest settings shared by the tests and by nbval's run of the solution notebooks."""


def pytest_collectstart(collector):
    """Tell nbval not to compare output that legitimately differs between machines.

    stderr carries TensorFlow's start-up lines in some environments and not in others, and
    Keras prints model summaries as rich HTML beside the plain text nbval does compare.
    """
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr", "text/html", "application/javascript")

pytest_plugins = ["tests.fixtures.storage", "tests.fixtures.sandbox", "tests.fixtures.product"]

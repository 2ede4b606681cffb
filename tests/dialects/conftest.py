"""The dialect tests' shared helpers fail with pytest's detailed assertion messages."""

import pytest

pytest.register_assert_rewrite("tests.dialects.support")

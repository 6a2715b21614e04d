import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "_shared"))

import pytest
from pyweb_verify import ensure_curl


@pytest.fixture(autouse=True, scope="module")
def curl_on_the_instance(host):
    """The tests run curl inside the instance themselves."""
    ensure_curl(host)

# Copyright: pyweb.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The health probes' early give-up (_http_status.FAIL_FAST), the same in both.
    DOCUMENTATION = r"""
options:
  fail_fast:
    description:
      - Stop waiting and fail at once after this many answers of exactly 500
        in a row from new workers only (no replaced worker left) - the app
        raised, it is not still starting (502, 503, 504 or a refused
        connection keep the wait going). A broken release is switched back
        in seconds instead of after O(timeout). V(0) waits the whole O(timeout).
    type: int
    default: 3
"""

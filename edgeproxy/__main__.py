"""`python -m edgeproxy` runs the same CLI as the `edgeproxy` console script."""

import signal
import sys

# A pod's worker (edgeproxy.workers) is passed every SIGHUP the pod gets, one that comes while
# it still starts too: ignored until it handles them (edgeproxy.app.serve), not its end. Set
# before the CLI's imports, which take most of a second.
if "--worker-index" in sys.argv:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

from edgeproxy.cli import main

raise SystemExit(main())

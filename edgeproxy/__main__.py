"""`python -m edgeproxy` runs the same CLI as the `edgeproxy` console script."""

from edgeproxy.cli import main

raise SystemExit(main())

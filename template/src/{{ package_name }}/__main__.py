"""`python -m <package>` runs the plugin like bin/<id> in a checkout's environment."""

import sys

from .main import main

sys.exit(main())

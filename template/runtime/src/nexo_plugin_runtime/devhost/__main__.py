"""`python -m nexo_plugin_runtime.devhost`: nexo-dev."""

import sys

from .cli import main

sys.exit(main())

import sys

from probe_utils.cli import main

sys.exit(main())

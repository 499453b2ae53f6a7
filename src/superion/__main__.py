import sys

from superion.cli import main

sys.exit(main())

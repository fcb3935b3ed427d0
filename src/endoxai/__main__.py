import sys

from endoxai.cli import main

sys.exit(main())

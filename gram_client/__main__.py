"""`python -m clients ...`: the GRAM command-line client (see clients/cli.py for the commands).

Receives the command line and hands it to `clients.cli.main`, whose return value is the exit
status. Knows nothing else.
"""

import sys

from clients.cli import main

sys.exit(main())

"""`python -m gram_client ...`: the GRAM command-line client (see gram_client/cli.py).

Receives the command line and hands it to `gram_client.cli.main`, whose return value is the exit
status. Knows nothing else.
"""

import sys

from gram_client.cli import main

sys.exit(main())

"""`python -m bulkmail ...` is the `bulkmail` command."""

import sys

from bulkmail.cli import main

sys.exit(main())

import sys

from bulkmail_providers.cli import main

sys.exit(main())

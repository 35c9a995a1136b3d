import sys

from stage5.cli import main

sys.exit(main())

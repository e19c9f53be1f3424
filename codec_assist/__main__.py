import sys

from codec_assist.cli import main

sys.exit(main())

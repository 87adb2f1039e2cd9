import sys

from scaler.worker.main import main

sys.exit(main())

from wganlab.cli import main

raise SystemExit(main())

from msgin5g.cli.main import main

raise SystemExit(main())

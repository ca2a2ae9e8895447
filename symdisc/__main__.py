from symdisc.cli import main

raise SystemExit(main())

from cabinet_leads.cli import main

raise SystemExit(main())

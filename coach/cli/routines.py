"""Commands about routines: routines, show, validate, import, schema."""

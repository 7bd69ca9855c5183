"""The customer register (DESIGN.md §3–§7)."""

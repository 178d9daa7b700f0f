"""Git hosting providers."""

"""HTTP layer: API, portal pages and git smart HTTP."""

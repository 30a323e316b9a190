"""The app's routers, one per area: queries, catalog, monitoring (runs, metrics, alarms), health."""

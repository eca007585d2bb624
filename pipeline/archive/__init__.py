"""Archived pages: captures of dead or changed links from web archives (Common Crawl, Wayback)."""

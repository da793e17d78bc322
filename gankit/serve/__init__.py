"""`gankit serve`: a local page for exploring trained generators, served by gankit itself.

    server.py       the HTTP server (standard library): binding, routes, 4xx answers
    params.py       a request's query string checked into the values a picture needs
    explorer.py     the generators being served and the pictures they draw (PNG)
    directions.py   principal directions of each generator's latent space (GANSpace)
    page/           the page: one HTML file, its script and its style, no build step

Everything the page needs is served from here; it loads nothing from anywhere else.
"""

"""GRAM serve's HTTP server: settings, wire schemas, routes, batcher, engine, metrics.

Receives HTTP requests and checkpoints (model/); hands on verified, ranked samples. The only
folder that imports fastapi; nothing imports it. It imports the wire schemas from `gram_client.schemas`.
Importing the package imports nothing heavy: `create_app` lives in server.app.
"""

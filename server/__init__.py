"""GRAM serve's HTTP server: settings, routes, request path, batcher, engine, metrics, playground.

Receives HTTP requests and checkpoints (model/); hands on verified, ranked samples. The only
folder that imports fastapi; nothing imports it. It imports the wire schemas from `gram_client.schemas`.
Importing the package imports nothing heavy: `create_app` lives in server.app.
"""

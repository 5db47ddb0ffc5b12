"""Infrastructure beside the core: folder scans, reloads and their thread, the parse cache,
the rendered-body cache, WebSub notifications. No Flask."""

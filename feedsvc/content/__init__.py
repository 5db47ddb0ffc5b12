"""One article file to a validated Article: the model, front matter, fields, text and URLs.

Pure core: no Flask, no feedgen, no threads."""

"""Stage 2, read. In: a staged file of a received drop, the district's registry entry, and the two tables other
teams own (theirs.py: dm.AccountInfo, dbo.ClassLinkUsers). Out: for each source declared in catalog.py, a
`ValidatedFile` (ingest.py): the file parsed (csvfile.py), bound to our columns (powerschool.py, star.py), typed
and checked with pandera (schemas.py), bad rows counted out by reason; or the file halted with its reason."""

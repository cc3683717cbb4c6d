"""Files: per-account tree, resumable uploads, share links, WebDAV."""

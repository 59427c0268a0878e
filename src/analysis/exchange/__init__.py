"""Reading files other software exchanges with us (REFI-QDA projects and codebooks): input, not output."""

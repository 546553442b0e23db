// Config parsing lands here (issue 2): TOML -> model with file:line:col errors.

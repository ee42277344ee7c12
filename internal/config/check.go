package config

// Check fills the defaults of a config built in code (not loaded from a
// file) and validates it with the same rules as Load. Problems come back
// as Errors, each with its key path; their File is "" and their Line 1,
// since there is no file. The library mode (package fanout) builds its
// config this way, so a plan written in Go is checked exactly like one
// written in YAML.
func Check(cfg *Config) error {
	c := newCollector(cfg.File)
	setDefaults(cfg)
	validate(cfg, c)
	return c.result()
}

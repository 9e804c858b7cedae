package main

// startControl starts the aof-admin NATS micro service.
func (g *gateway) startControl(opts runOptions) error {
	return nil
}

package refcloud

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// reloadDelay gathers the burst of events one editor save makes into one reload.
const reloadDelay = 150 * time.Millisecond

// Watch reloads the data when inventory.yaml changes, until ctx ends. It
// watches the folder, not the file, so editors that save by renaming a new
// file into place are seen too. Files under files/ are read per request and
// need no reload.
func (s *Server) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("refcloud: watch: %w", err)
	}
	defer w.Close()
	if err := w.Add(s.cfg.DataDir); err != nil {
		return fmt.Errorf("refcloud: watch %s: %w", s.cfg.DataDir, err)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if filepath.Base(ev.Name) == InventoryFile {
				timer.Reset(reloadDelay)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			s.log.Warn("watch error", "err", err)
		case <-timer.C:
			_ = s.Reload() // logs its own failure and keeps the last good data
		}
	}
}

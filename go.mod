module github.com/provgate/provgate

go 1.26.0

require (
	github.com/fsnotify/fsnotify v1.10.1
	go.yaml.in/yaml/v3 v3.0.6
	golang.org/x/sync v0.25.0
)

require golang.org/x/sys v0.49.0 // indirect

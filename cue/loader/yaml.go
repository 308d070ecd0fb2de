package loader

import (
	"fmt"

	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/encoding/yaml"
)

// YAMLToJSON parses a YAML document and returns it as JSON, so that tests
// can check the YAML files gitgw ships (the CI templates in examples/ci)
// without another YAML library: CUE already parses YAML, and only this
// package imports CUE. name is used in error messages.
func YAMLToJSON(name string, src []byte) ([]byte, error) {
	f, err := yaml.Extract(name, src)
	if err != nil {
		return nil, fmt.Errorf("loader: %s: %w", name, err)
	}
	v := cuecontext.New().BuildFile(f)
	if err := v.Err(); err != nil {
		return nil, fmt.Errorf("loader: %s: %w", name, err)
	}
	b, err := v.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("loader: %s: %w", name, err)
	}
	return b, nil
}

package rest

import (
	"context"
	"fmt"
	"net/http"

	"github.com/sluicehq/sluice/worker/api"
)

// connectorClass is the setting that names a connector's plugin.
const connectorClass = "connector.class"

// listPlugins answers GET /connector-plugins?connectorsOnly=true|false (default true): the
// connector plugins, and with connectorsOnly=false the converters, transformations and
// predicates too.
func (a *handlers) listPlugins(w http.ResponseWriter, r *http.Request) error {
	connectorsOnly, err := boolQuery(r, "connectorsOnly", true)
	if err != nil {
		return err
	}
	plugins, err := call(a, r, "listing plugins", func(ctx context.Context) ([]api.PluginInfo, error) {
		return a.w.Plugins(ctx, connectorsOnly), nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, orEmpty(plugins))
	return nil
}

// pluginConfig answers GET /connector-plugins/{pluginName}/config: the plugin's settings.
func (a *handlers) pluginConfig(w http.ResponseWriter, r *http.Request) error {
	plugin := pathParam(r, "pluginName")
	keys, err := call(a, r, fmt.Sprintf("reading the settings of plugin %q", plugin), func(ctx context.Context) ([]api.ConfigKeyInfo, error) {
		return a.w.PluginConfig(ctx, plugin)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, normalizeConfigKeys(keys))
	return nil
}

// validateConfig answers PUT /connector-plugins/{pluginName}/config/validate: 200 with the
// ConfigInfos even when the configuration is invalid (error_count says how many errors); 400
// when the body has no connector.class. Whether the body's class matches {pluginName} (aliases
// included) the worker decides; it answers a mismatch with worker.ErrBadRequest.
func (a *handlers) validateConfig(w http.ResponseWriter, r *http.Request) error {
	plugin := pathParam(r, "pluginName")
	var cfg configMap
	if err := decodeBody(r, &cfg, configWhat, decodeOptions{}); err != nil {
		return err
	}
	if cfg == nil {
		return badRequest("the request body must be %s, not null", configWhat)
	}
	if cfg[connectorClass] == "" {
		return badRequest("the configuration has no %q: validation needs it to know the connector's type "+
			"(it should name plugin %q)", connectorClass, plugin)
	}
	infos, err := call(a, r, fmt.Sprintf("validating a configuration for plugin %q", plugin), func(ctx context.Context) (api.ConfigInfos, error) {
		return a.w.ValidateConfig(ctx, plugin, cfg)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, normalizeConfigInfos(infos))
	return nil
}

/* Small shared helpers: mode names, session names. */
#include <errno.h>
#include <string.h>

#include "uni/common.h"

static const char *const mode_names[] = {"record", "simulate", "emulate"};

const char *uni_mode_name(uint32_t mode)
{
	return mode < UNI_ARRAY_LEN(mode_names) ? mode_names[mode] : "?";
}

int uni_mode_parse(const char *name, uint32_t *mode)
{
	for (uint32_t i = 0; i < UNI_ARRAY_LEN(mode_names); i++) {
		if (strcmp(name, mode_names[i]) == 0) {
			*mode = i;
			return 0;
		}
	}
	return -EINVAL;
}

int uni_session_name_check(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 47)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
			return -EINVAL;
	}
	if (name[0] == '.')
		return -EINVAL;
	return 0;
}

/*
 * reds.h - the Arduino library's umbrella header: the app (which brings the backend and the runtime).
 */
#ifndef REDS_H
#define REDS_H

#include "app/reds_app.h"

#endif /* REDS_H */

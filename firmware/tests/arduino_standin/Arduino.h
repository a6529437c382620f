/*
 * Compile-only stand-in for the Arduino core's Arduino.h (arduino-cli and the mbed core cannot be
 * installed on the build machines): just the declarations nano33_reds.ino uses, so that
 * `make -C firmware m4-gnu99` compiles the sketch as GNU C++14 for Cortex-M4 and can measure its static
 * buffers. Declarations only: the object is never linked or run.
 */
#ifndef REDS_ARDUINO_STANDIN_H
#define REDS_ARDUINO_STANDIN_H

#include <stddef.h>
#include <stdint.h>

class SerialStandIn {
  public:
    void begin(unsigned long baud);
    int available();
    int read();
    size_t print(const char *s);
    size_t print(int v);
    size_t println(const char *s);
    explicit operator bool() const;
};

extern SerialStandIn Serial;
unsigned long micros(void);

#endif /* REDS_ARDUINO_STANDIN_H */

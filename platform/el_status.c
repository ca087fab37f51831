/* el_status — names of the project-wide status codes (see el_status.h). */
#include "el_status.h"

const char *el_status_str(el_status st)
{
    switch (st) {
    case EL_OK: return "ok";
    case EL_AGAIN: return "try again";
    case EL_INVAL: return "invalid";
    case EL_NOMEM: return "out of memory";
    case EL_IO: return "I/O error";
    case EL_FULL: return "no space";
    case EL_CORRUPT: return "corrupt";
    case EL_NOTFOUND: return "not found";
    case EL_DB: return "database error";
    case EL_MQTT: return "MQTT error";
    case EL_TIMEOUT: return "deadline passed";
    }
    return "unknown";
}

# Run at every build (cmake -P): writes OUT, a Python module naming the git commit the
# module is built from ("+dirty" with uncommitted changes to tracked files), or None
# outside a git checkout. Rewritten only when it changes, so a build without changes
# installs nothing new.
execute_process(COMMAND git -C "${SRC}" rev-parse --short=12 HEAD
                OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE
                RESULT_VARIABLE failed ERROR_QUIET)
if(failed)
    set(value "None")
else()
    execute_process(COMMAND git -C "${SRC}" status --porcelain --untracked-files=no
                    OUTPUT_VARIABLE changes OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(changes)
        set(commit "${commit}+dirty")
    endif()
    set(value "\"${commit}\"")
endif()
set(text "\"\"\"Written by the build (cmake/Modules/semcomBuildInfo.cmake): the commit built from.\"\"\"\n\nCOMMIT = ${value}\n")
if(EXISTS "${OUT}")
    file(READ "${OUT}" old)
endif()
if(NOT "${old}" STREQUAL "${text}")
    file(WRITE "${OUT}" "${text}")
endif()

# smoothtask_bpf_objects(<target> <outdir> <sources...>)
# Compiles each x.bpf.c into <outdir>/x.bpf.o with clang -g -O2 -target bpf (CO-RE, BTF kept),
# against a vmlinux.h generated once from the running kernel's BTF.
find_program(SMOOTHTASK_CLANG NAMES clang clang-16 clang-15 clang-14 REQUIRED)
find_program(SMOOTHTASK_BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)

set(SMOOTHTASK_VMLINUX_DIR ${CMAKE_BINARY_DIR}/vmlinux)
set(SMOOTHTASK_VMLINUX_H ${SMOOTHTASK_VMLINUX_DIR}/vmlinux.h)
if(NOT TARGET smoothtask_vmlinux)
  if(DEFINED ENV{SMOOTHTASK_BTF})
    set(SMOOTHTASK_BTF_SRC $ENV{SMOOTHTASK_BTF})
  else()
    set(SMOOTHTASK_BTF_SRC /sys/kernel/btf/vmlinux)
  endif()
  add_custom_command(
    OUTPUT ${SMOOTHTASK_VMLINUX_H}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${SMOOTHTASK_VMLINUX_DIR}
    COMMAND sh -c "${SMOOTHTASK_BPFTOOL} btf dump file ${SMOOTHTASK_BTF_SRC} format c > ${SMOOTHTASK_VMLINUX_H}.tmp && mv ${SMOOTHTASK_VMLINUX_H}.tmp ${SMOOTHTASK_VMLINUX_H}"
    COMMENT "Generating vmlinux.h from ${SMOOTHTASK_BTF_SRC}"
    VERBATIM)
  add_custom_target(smoothtask_vmlinux DEPENDS ${SMOOTHTASK_VMLINUX_H})
endif()

execute_process(COMMAND uname -m OUTPUT_VARIABLE SMOOTHTASK_UNAME_M OUTPUT_STRIP_TRAILING_WHITESPACE)
if(SMOOTHTASK_UNAME_M STREQUAL "x86_64")
  set(SMOOTHTASK_BPF_ARCH x86)
elseif(SMOOTHTASK_UNAME_M STREQUAL "aarch64")
  set(SMOOTHTASK_BPF_ARCH arm64)
else()
  set(SMOOTHTASK_BPF_ARCH ${SMOOTHTASK_UNAME_M})
endif()

function(smoothtask_bpf_objects target outdir)
  set(objects)
  foreach(src ${ARGN})
    get_filename_component(name ${src} NAME_WE)
    get_filename_component(dir ${src} DIRECTORY)
    set(obj ${outdir}/${name}.bpf.o)
    file(GLOB headers ${dir}/*.h ${CMAKE_SOURCE_DIR}/bpf/*.h)
    add_custom_command(
      OUTPUT ${obj}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${outdir}
      COMMAND ${SMOOTHTASK_CLANG} -g -O2 -Wall -Wno-unused-function -target bpf
              -D__TARGET_ARCH_${SMOOTHTASK_BPF_ARCH}
              -I${SMOOTHTASK_VMLINUX_DIR} -I${CMAKE_SOURCE_DIR}/bpf -I${dir}
              -c ${src} -o ${obj}
      DEPENDS ${src} ${headers} ${SMOOTHTASK_VMLINUX_H}
      COMMENT "BPF ${name}.bpf.c"
      VERBATIM)
    list(APPEND objects ${obj})
  endforeach()
  add_custom_target(${target} ALL DEPENDS ${objects} smoothtask_vmlinux)
endfunction()

// RUN: ember-opt %s -p canonicalize | filecheck %s

builtin.module {
  // CHECK-LABEL: func.func @reshapes
  // CHECK-NEXT:    %[[R:.*]] = nn.reshape %{{.*}} : (tensor<2x3x4xf32>) -> tensor<24xf32>
  // CHECK-NEXT:    func.return %[[R]]
  func.func @reshapes(%x: tensor<2x3x4xf32>) -> tensor<24xf32> {
    %0 = nn.reshape %x : (tensor<2x3x4xf32>) -> tensor<6x4xf32>
    %1 = nn.reshape %0 : (tensor<6x4xf32>) -> tensor<24xf32>
    func.return %1 : tensor<24xf32>
  }

  // CHECK-LABEL: func.func @no_op_cast
  // CHECK-NEXT:    func.return %{{.*}} : tensor<2xf32>
  func.func @no_op_cast(%x: tensor<2xf32>) -> tensor<2xf32> {
    %0 = nn.cast %x {to = f32} : tensor<2xf32> -> tensor<2xf32>
    func.return %0 : tensor<2xf32>
  }

  // Equal types with anonymous unknown dims are not equal shapes: the reshape stays.
  // CHECK-LABEL: func.func @anonymous_unknown_reshape_stays
  // CHECK-NEXT:    %[[R:.*]] = nn.reshape %{{.*}} : (tensor<?x?xf32>) -> tensor<?x?xf32>
  // CHECK-NEXT:    func.return %[[R]]
  func.func @anonymous_unknown_reshape_stays(%x: tensor<?x?xf32>) -> tensor<?x?xf32> {
    %0 = nn.reshape %x : (tensor<?x?xf32>) -> tensor<?x?xf32>
    func.return %0 : tensor<?x?xf32>
  }
}
